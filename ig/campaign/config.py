"""Reading a campaign config: the JSON schema (``workflow/schemas/config.schema.yaml``) checks it and
fills its defaults; the first problem is one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ig.errors import IGError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def validate(config: dict[str, Any], schema_path: str | Path = SCHEMA) -> dict[str, Any]:
    """Check a config against the schema (filling defaults); the first problem as one line."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        {"properties": _fill_defaults(jsonschema.Draft202012Validator.VALIDATORS["properties"])},
    )
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        raise IGError(f"config: {where}: {error.message} (see config/README.md)")
    return config


def _fill_defaults(validate_properties):
    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = sub["default"]
        yield from validate_properties(validator, properties, instance, schema)

    return properties
