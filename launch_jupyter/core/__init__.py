"""Pure-Python core: states, models, config files, validation, templates. No I/O beyond reading config files."""
