"""One cog per feature, loaded by ``bot.app.EXTENSIONS``."""
