"""The ``distillwatch`` command line (typer + rich)."""
