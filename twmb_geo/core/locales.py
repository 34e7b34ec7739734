"""Which day/month order a locale writes numeric dates in (``03/04/2015``).

Used by a profile's ``locale`` key: when a source's own values cannot settle whether
``03/04/2015`` is 3 April or March 4, the locale does. ``None`` means the locale is known
but writes both orders (Canada), so it settles nothing.
"""

from __future__ import annotations

__all__ = ["DATE_ORDERS", "locale_date_order", "normalise_locale"]

#: the orders a profile's ``date_order`` may name
DATE_ORDERS = ("auto", "dmy", "mdy", "ymd")

#: whole locales whose order differs from their language's, or whose language is not listed
_BY_LOCALE: dict[str, str | None] = {
    "en_US": "mdy",
    "es_US": "mdy",
    "en_PH": "mdy",
    "fil_PH": "mdy",
    "en_CA": None,
    "fr_CA": None,
    "en_GB": "dmy",
    "en_IE": "dmy",
    "en_AU": "dmy",
    "en_NZ": "dmy",
    "en_ZA": "dmy",
    "en_IN": "dmy",
    "en_SG": "dmy",
    "en_HK": "dmy",
    "en_NG": "dmy",
    "en_KE": "dmy",
    "en_MY": "dmy",
    "en_PK": "dmy",
    "zh_CN": "ymd",
    "zh_TW": "ymd",
    "zh_HK": "dmy",
    "ja_JP": "ymd",
    "ko_KR": "ymd",
    "hu_HU": "ymd",
    "lt_LT": "ymd",
    "mn_MN": "ymd",
}

#: languages whose every country writes day-first, unless listed in ``_BY_LOCALE``
_DAY_FIRST_LANGUAGES = (
    "fr de es pt it nl da nb nn no fi is pl cs sk sl hr sr bs bg ro ru uk be el tr he "
    "ar fa id ms vi th ca eu gl et lv mt ga cy af sw hi bn ta te ur"
)
_BY_LANGUAGE: dict[str, str] = dict.fromkeys(_DAY_FIRST_LANGUAGES.split(), "dmy")


def normalise_locale(locale: str) -> str:
    """``"en-gb.UTF-8"`` -> ``"en_GB"`` (language lower case, country upper case)."""
    base = locale.strip().split(".")[0].split("@")[0].replace("-", "_")
    lang, _, country = base.partition("_")
    return f"{lang.lower()}_{country.upper()}" if country else lang.lower()


def locale_date_order(locale: str) -> str | None:
    """The day/month order (``"dmy"``, ``"mdy"``, ``"ymd"``) of ``locale``, ``None`` if mixed.

    Raises
    ------
    KeyError
        The locale is not known; the message lists examples of known ones.
    """
    loc = normalise_locale(locale)
    if loc in _BY_LOCALE:
        return _BY_LOCALE[loc]
    lang = loc.partition("_")[0]
    if lang in _BY_LANGUAGE:
        return _BY_LANGUAGE[lang]
    raise KeyError(
        f"unknown locale {locale!r}; use a language_COUNTRY code such as 'en_US' (month-first), "
        "'en_GB', 'fr_FR', 'de_DE', 'es_MX', 'pt_BR', 'en_AU' (day-first) or 'ja_JP' "
        "(year-first), or set date_order instead"
    )
