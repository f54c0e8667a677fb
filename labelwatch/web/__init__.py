"""The worker's read-only web dashboard: read queries (:mod:`labelwatch.web.queries`), the
pages that serve them (:mod:`labelwatch.web.pages`) and the static page under ``static/``."""
