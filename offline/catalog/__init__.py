"""The region catalog: audio files split into content regions, analysed by plugins, kept in SQLite.

schema.py: the SQLite schema and its migrations; regions.py: the silence split (a step on
arrays); plugins.py: the analysis plugins and the worker process that runs them with a time
limit; store.py: the catalog (add, tag, remove, stats, export); search.py: filters and
similar-region search; http.py: the Starlette app (API and page, web/index.html).
"""

from .regions import Region, RegionSplit, split_regions
from .schema import SCHEMA_VERSION, CatalogError, connect

__all__ = ["SCHEMA_VERSION", "CatalogError", "Region", "RegionSplit", "connect", "split_regions"]
