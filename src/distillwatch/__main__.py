"""``python -m distillwatch``: the same as the ``distillwatch`` command."""

from distillwatch.cli.main import app

if __name__ == "__main__":
    app(prog_name="distillwatch")
