"""Invoice documents: jinja2 templates (HTML, UBL XML, email text) and the WeasyPrint renderer."""
