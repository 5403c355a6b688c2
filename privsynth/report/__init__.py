"""The release report: figures (data.py), charts (svg.py) and the HTML page (html.py)."""
