"""Bastion's composition root: settings, CLI and the application factory."""

__version__ = "0.1.0"
