"""Message catalogues for transship.i18n: one module per language, each with a ``MESSAGES`` dict."""
