"""digest's built-in templates, installed as the package `digest.templates`.

This folder is the source; pyproject.toml maps it to `digest.templates` so that a wheel
carries the files, and the code reads them with `importlib.resources`. A user's
`digest: templates:` folder overrides any of them by name.
"""
