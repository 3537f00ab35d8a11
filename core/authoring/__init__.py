"""Authoring plugins: the new-plugin scaffold, ``maekit check-plugin``, templates, and the pytest
fixtures plugin authors test with (:mod:`maekit.authoring.testing`)."""
