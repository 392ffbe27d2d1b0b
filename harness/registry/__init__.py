"""The registry: one SQLite file recording base models, datasets, runs, adapters, evals, gate
decisions and channels (with append-only history and audit), plus the content-addressed adapter
store. Promotion moves a channel pointer only behind a passing gate; rollback moves it back."""

from harness.registry.channels import EXPORT_FORMATS, headline
from harness.registry.environment import capture_environment
from harness.registry.errors import NotFound, PromotionRefused, RegistryError, RollbackRefused, TamperedAdapter
from harness.registry.registry import RUN_STATUSES, Registry, default_registry_path
from harness.registry.schema import MIGRATIONS, migrate, schema_version
from harness.registry.store import AdapterStore, default_store_root

__all__ = [
    "EXPORT_FORMATS",
    "MIGRATIONS",
    "RUN_STATUSES",
    "AdapterStore",
    "NotFound",
    "PromotionRefused",
    "Registry",
    "RegistryError",
    "RollbackRefused",
    "TamperedAdapter",
    "capture_environment",
    "default_registry_path",
    "default_store_root",
    "headline",
    "migrate",
    "schema_version",
]
