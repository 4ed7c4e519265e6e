"""Values the shell completes (typer's `autocompletion=`): models, settings, providers, shells.

Each function runs only when the shell asks (`_VDR_COMPLETE` set), so the
imports stay inside them and a broken registry never breaks a completion.
"""

from __future__ import annotations


def _starting(values, incomplete: str) -> list[str]:
    return sorted({v for v in values if v.startswith(incomplete)})


def registered_models(incomplete: str) -> list[str]:
    try:
        from vdr_cli.models.registry import Registry

        return _starting(Registry().entries, incomplete)
    except Exception:  # a completion never fails loudly
        return []


def model_names(incomplete: str) -> list[str]:
    from vdr_cli.models.catalog import CATALOG

    return _starting([*registered_models(""), *CATALOG], incomplete)


def catalog_names(incomplete: str) -> list[str]:
    from vdr_cli.models.catalog import CATALOG

    return _starting([*CATALOG, "hf:"], incomplete)


def setting_keys(incomplete: str) -> list[str]:
    from vdr_cli.settings import SETTINGS

    return _starting(SETTINGS, incomplete)


def providers(incomplete: str) -> list[str]:
    from vdr_cli.tools.search.base import PROVIDERS

    # A fallback list completes its last entry: "bing,yan" → "bing,yandex".
    head, _, last = incomplete.rpartition(",")
    return [(head + "," if head else "") + p for p in _starting(PROVIDERS, last)]


def shells(incomplete: str) -> list[str]:
    from vdr_cli.cli.completion import SHELLS

    return _starting(SHELLS, incomplete)


def folders(incomplete: str) -> list[str]:
    return _starting(("config", "data", "cache"), incomplete)
