"""The admin API under ``/admin/v1/``: the same services as the CLI, over HTTP, with roles checked."""

from dizuo.admin.app import create_admin_app

__all__ = ["create_admin_app"]
