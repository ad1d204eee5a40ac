"""The web console: server-rendered pages (Jinja2 + HTMX + ECharts) under ``/console/``."""

from dizuo.console.app import create_console_app

__all__ = ["create_console_app"]
