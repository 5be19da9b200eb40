"""The web face of `qa`: a Gradio chat over the report index (`ui.serving.serve`, `qa serve`)."""

from __future__ import annotations
