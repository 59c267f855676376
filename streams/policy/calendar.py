"""The calendar the law and the notice count days in: Japan's (no summer time)."""

from __future__ import annotations

import datetime as dt

JST = dt.timezone(dt.timedelta(hours=9), "JST")
