"""Interactions SimCord's actors would refuse to send, as a real (stale or fast) Discord client can.

``member.click`` waits for each click to settle and refuses disabled buttons; ``member.slash`` checks
options against the synced schema. Real users double-click, and a client with an old copy of the
command schema sends out-of-range options. These helpers put the raw INTERACTION_CREATE payloads on
SimCord's gateway, all before settling once, and return the usual ``InteractionResult`` for each.
"""

from __future__ import annotations

from typing import Any

import simcord
from simcord import interactions as sim_interactions
from simcord.backend import serializers
from simcord.enums import AppCommandType, ComponentType, InteractionType


async def clicks_at_once(
    env, channel, message, presses: list[tuple[Any, str]]
) -> list[simcord.InteractionResult]:
    """Each ``(member, custom_id)`` clicks ``message`` in the same instant; then everything settles."""
    stored = env.backend.get_message(channel.id, message.id)
    records = []
    for member, custom_id in presses:
        record, payload = sim_interactions.base_payload(
            env.backend,
            type=InteractionType.MESSAGE_COMPONENT,
            channel_id=channel.id,
            guild_id=getattr(channel.guild, "id", None),
            user_id=member.id,
            data={"custom_id": custom_id, "component_type": ComponentType.BUTTON},
        )
        payload["message"] = dict(serializers.message_payload(env.backend, stored))
        record.source_message_id = stored.id
        records.append(record)
        env.backend.emit("INTERACTION_CREATE", payload)
    await env.settle(timeout=60)
    return [simcord.InteractionResult(env, record) for record in records]


async def stale_slash(env, guild, channel, member, name: str, **options: Any) -> simcord.InteractionResult:
    """``/name`` with options the current schema would reject (the option types are taken from it)."""
    record = emit_slash(env, guild, channel, member, name, **options)
    await env.settle(timeout=60)
    return simcord.InteractionResult(env, record)


def emit_slash(env, guild, channel, member, name: str, **options: Any) -> Any:
    """Put one ``/name`` interaction on the gateway without settling (many can arrive at once); returns
    SimCord's interaction record for ``simcord.InteractionResult`` once settled."""
    command = env.backend.find_command(name, guild.id, type=AppCommandType.CHAT_INPUT)
    types = {option["name"]: option["type"] for option in command.get("options", [])}
    data = {
        "id": command["id"],
        "name": name,
        "type": AppCommandType.CHAT_INPUT,
        "options": [{"name": key, "type": types[key], "value": value} for key, value in options.items()],
    }
    record, payload = sim_interactions.base_payload(
        env.backend,
        type=InteractionType.APPLICATION_COMMAND,
        channel_id=channel.id,
        guild_id=guild.id,
        user_id=member.id,
        data=data,
    )
    env.backend.emit("INTERACTION_CREATE", payload)
    return record
