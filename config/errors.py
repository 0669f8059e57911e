"""The configuration error, in its own module so ``config.security`` and ``config.settings`` both raise it
without importing each other."""


class SettingsError(ValueError):
    """A configuration value is missing or cannot be parsed."""
