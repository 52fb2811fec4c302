"""text2emoji's model: text encoder, generator networks, data, training and sampling.

No Discord imports here, ever. The public surface is small:

    from model import Generator
    gen = Generator.load()                       # shipped checkpoint, device "auto"
    images = gen.generate(["축하해"], count=2, seed=0)   # list[list[PIL.Image]] (RGBA 72x72)
    [drawing] = gen.draw([("고양이 + 왕관", 2, 0)])      # Drawing(images, tag="👑", parts=("고양이", "왕관"))
    sticker = drawing.at_size(0, 320)            # 72, 128 or 320 px, cut from the refiner's 288-px drawing

Torch-free helpers the bot shares (same rules on both sides): model.MAX_TEXT_CHARS and model.prompt
(clean_text, name_key), model.hangul (the Hangul decomposer), model.imaging (resize, margins; PIL only).
Where the model runs: model.device.resolve_device. Which arch builds, trains and samples: model.archs.
"""

from model.prompt import MAX_TEXT_CHARS

__all__ = ["MAX_TEXT_CHARS", "Drawing", "EmptyTextError", "Generator"]
_SAMPLING = {"Drawing", "EmptyTextError", "Generator"}


def __getattr__(name: str):
    # Imported lazily so `python -m model.sample` and light imports (model.prompt, model.hangul,
    # model.imaging: the bot's) do not pull in torch.
    if name in _SAMPLING:
        from model import sample

        return getattr(sample, name)
    raise AttributeError(name)
