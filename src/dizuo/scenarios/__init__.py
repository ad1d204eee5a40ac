"""Scenario lists (场景清单): needs, their lifecycle, the program office's numbered lists."""
