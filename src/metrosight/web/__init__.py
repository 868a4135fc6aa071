"""The operator UI: Jinja2 templates (``templates/``) and static files (``static/``), served by
:mod:`metrosight.api`. Plain server-rendered HTML; a little vanilla JavaScript for the live feed and the buttons."""
