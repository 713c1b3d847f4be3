"""`field__any=[...]`: membership bound as ONE array parameter (`col = ANY(%s::type[])`).

`field__in=[...]` writes one placeholder per value: at 3,000 ids Django prepares each value
and psycopg splits a query string of 3,000 placeholders, a tenth of the scaling decision
loop's time (bench/scaling, decide). PostgreSQL plans `= ANY(array)` like `IN (...)`, index
included. Registered on every field (and foreign keys) when the spine's app is ready.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Lookup
from django.db.models.fields.related import ForeignObject
from django.db.models.sql.compiler import SQLCompiler


class Any_(Lookup[Any]):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[Any]:
        if isinstance(self.rhs, str) or not hasattr(self.rhs, "__iter__"):
            raise TypeError(f"{self.lookup_name} takes a list of values, not {self.rhs!r}")
        field = self.lhs.output_field
        return [field.get_prep_value(value) for value in self.rhs]

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection, prepared=True) for v in self.rhs]
        # The cast keeps the column's own type, so its index serves the lookup.
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", (*lhs_params, values)


def register() -> None:
    Field.register_lookup(Any_)
    ForeignObject.register_lookup(Any_)
