"""Check the raw schema scripts in sql/<dialect>/ against app/index/tables.py without a database.

MS SQL cannot run in CI, so its scripts are verified offline: every batch must parse with sqlglot (T-SQL),
every CREATE must be guarded so the script is re-runnable, and the tables, columns (type, nullability,
identity), keys, unique constraints, foreign keys and indexes the scripts declare must equal those of
``CreateTable``/``CreateIndex`` of tables.py compiled with SQLAlchemy's dialect, both read with sqlglot.
The same check works for postgresql and sqlite (those are also tested against a live database).

    python scripts/check_schema.py                 # all dialects
    python scripts/check_schema.py --dialect mssql

Exit status 0 when everything agrees, 1 with one line per problem otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlglot
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlglot import exp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.index import schema, tables  # noqa: E402

SQLGLOT_NAME = {"mssql": "tsql", "postgresql": "postgres", "sqlite": "sqlite"}
SQLALCHEMY_DIALECT = {"mssql": mssql.dialect(), "postgresql": postgresql.dialect(),
                      "sqlite": sqlite.dialect()}

# Types the scripts use on purpose instead of what SQLAlchemy's mssql dialect emits for tables.py:
# Unicode text whatever the collation, and DATETIME2 rather than the legacy 3 ms DATETIME.
MSSQL_SCRIPT_TYPE = {"VARCHAR": "NVARCHAR", "TEXT": "NVARCHAR(MAX)", "DATETIME": "DATETIME2"}
SERIAL_TYPE = {"SERIAL": "INT", "BIGSERIAL": "BIGINT", "SMALLSERIAL": "SMALLINT"}


class Model:
    """The schema one or more scripts declare, in comparable form."""

    def __init__(self):
        self.tables: dict[str, dict] = {}
        self.indexes: dict[str, tuple] = {}
        self.problems: list[str] = []


def normalise_type(datatype: exp.DataType, dialect: str) -> tuple[str, bool]:
    """(type text, is_serial): INTEGER and INT alike, dialect-specific spellings mapped to one form."""
    name = datatype.this.name
    params = [p.sql() for p in datatype.expressions]
    serial = name in SERIAL_TYPE
    name = SERIAL_TYPE.get(name, name)
    if dialect == "mssql" and name in MSSQL_SCRIPT_TYPE:
        name = MSSQL_SCRIPT_TYPE[name]
    if params and "(" not in name:
        name += "(" + ", ".join(params) + ")"
    return name.upper(), serial


def _names(items) -> tuple[str, ...]:
    return tuple((item.this if isinstance(item, exp.Ordered) else item).name for item in items)


def _add_table(model: Model, create: exp.Create, dialect: str, where: str) -> None:
    table = create.this.this.name
    if table in model.tables:  # CREATE ... IF NOT EXISTS again: the first declaration stands
        return
    columns, unique, foreign, pk = {}, {}, {}, ()
    for item in create.this.expressions:
        constraint_name = None
        if isinstance(item, exp.Constraint):
            constraint_name, item = item.name, item.expressions[0]
        if isinstance(item, exp.ColumnDef):
            kinds = [c.args["kind"] for c in item.args.get("constraints") or []]
            type_text, serial = normalise_type(item.args["kind"], dialect)
            not_null = any(isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null")
                           for k in kinds)
            identity = serial or any(isinstance(k, (exp.GeneratedAsIdentityColumnConstraint,
                                                    exp.AutoIncrementColumnConstraint)) for k in kinds)
            if any(isinstance(k, exp.PrimaryKeyColumnConstraint) for k in kinds):
                pk = (item.name,)
            columns[item.name] = [type_text, not not_null, identity]
        elif isinstance(item, exp.PrimaryKey):
            pk = _names(item.expressions)
        elif isinstance(item, exp.UniqueColumnConstraint):
            unique[constraint_name] = _names(item.this.expressions)
        elif isinstance(item, exp.ForeignKey):
            reference = item.args["reference"]
            options = " ".join(str(o) for o in reference.args.get("options") or []).upper()
            foreign[constraint_name] = (_names(item.expressions), reference.this.this.name,
                                        _names(reference.this.expressions), options)
        else:
            model.problems.append(f"{where}: {table}: cannot model {item.sql()!r}")
    for name in pk:  # primary key columns are NOT NULL; a lone INTEGER key on SQLite is the rowid
        columns[name][1] = False
        if dialect == "sqlite" and len(pk) == 1 and columns[name][0] == "INT":
            columns[name][2] = True
    model.tables[table] = {"columns": {k: tuple(v) for k, v in columns.items()}, "primary key": pk,
                           "unique": unique, "foreign keys": foreign}


def _add_statement(model: Model, node: exp.Expression, dialect: str, where: str, guarded: str | None,
                   scripts: bool) -> None:
    """Record one statement; ``guarded`` is the text of the enclosing T-SQL IF condition, if any."""
    if isinstance(node, exp.IfBlock):
        condition = node.this.sql(dialect="tsql")
        for branch in filter(None, (node.args.get("true"), node.args.get("false"))):
            for child in branch.expressions if isinstance(branch, exp.Block) else [branch]:
                _add_statement(model, child, dialect, where, condition, scripts)
    elif isinstance(node, exp.Create) and node.kind in ("TABLE", "INDEX"):
        name = node.this.this.name
        if scripts and not (node.args.get("exists") or (guarded and name in guarded)):
            model.problems.append(f"{where}: CREATE {node.kind} {name} is not guarded, so the script is "
                                  "not re-runnable (IF NOT EXISTS / IF OBJECT_ID(...) IS NULL)")
        if node.kind == "TABLE":
            _add_table(model, node, dialect, where)
        else:
            index = node.this
            model.indexes.setdefault(index.name, (index.args["table"].name,
                                                  _names(index.args["params"].args["columns"]),
                                                  bool(node.args.get("unique"))))
    elif isinstance(node, exp.Insert) and node.this.find(exp.Table).name == tables.schema_version.name:
        if scripts and not node.find(exp.Exists):
            model.problems.append(f"{where}: the schema_version INSERT needs WHERE NOT EXISTS "
                                  "to be re-runnable")
    else:
        model.problems.append(f"{where}: statement not understood by this checker: {node.sql()[:80]!r}")


def script_model(dialect: str, paths: list[Path]) -> Model:
    """Parse every batch of ``paths`` (in order) with sqlglot and collect what they create."""
    model = Model()
    for path in paths:
        for number, batch in enumerate(schema.split_batches(path.read_text(encoding="utf-8"), dialect), 1):
            where = f"{path.parent.name}/{path.name} batch {number}"
            try:
                statements = sqlglot.parse(batch, read=SQLGLOT_NAME[dialect])
            except sqlglot.errors.ParseError as exc:
                model.problems.append(f"{where}: does not parse as {SQLGLOT_NAME[dialect]}: {exc}")
                continue
            for statement in filter(None, statements):
                _add_statement(model, statement, dialect, where, None, scripts=True)
    return model


def tables_model(dialect: str) -> Model:
    """tables.py compiled to DDL with SQLAlchemy's ``dialect``, read back the same way as the scripts."""
    model = Model()
    sa_dialect = SQLALCHEMY_DIALECT[dialect]
    for table in tables.ALL_TABLES:
        ddl = [CreateTable(table)] + [CreateIndex(ix) for ix in sorted(table.indexes, key=lambda i: i.name)]
        for element in ddl:
            ddl_text = str(element.compile(dialect=sa_dialect))
            statement = sqlglot.parse_one(ddl_text, read=SQLGLOT_NAME[dialect])
            _add_statement(model, statement, dialect, f"tables.py {table.name}", None, scripts=False)
    return model


def compare(expected: Model, actual: Model, label: str) -> list[str]:
    """One line per difference between tables.py (expected) and the scripts (actual)."""
    problems = list(expected.problems) + list(actual.problems)
    for table in sorted(set(expected.tables) | set(actual.tables)):
        if table not in actual.tables or table not in expected.tables:
            side = "missing from" if table not in actual.tables else "not in tables.py but in"
            problems.append(f"{label}: table {table} {side} the scripts")
            continue
        want, got = expected.tables[table], actual.tables[table]
        for section in ("columns", "unique", "foreign keys"):
            for key in sorted(set(want[section]) | set(got[section])):
                if want[section].get(key) != got[section].get(key):
                    problems.append(f"{label}: {table} {section} {key}: scripts declare "
                                    f"{got[section].get(key)}, tables.py wants {want[section].get(key)}")
        if want["primary key"] != got["primary key"]:
            problems.append(f"{label}: {table} primary key: scripts declare {got['primary key']}, "
                            f"tables.py wants {want['primary key']}")
        if list(want["columns"]) != list(got["columns"]) and set(want["columns"]) == set(got["columns"]):
            problems.append(f"{label}: {table} column order differs from tables.py")
    for index in sorted(set(expected.indexes) | set(actual.indexes)):
        if expected.indexes.get(index) != actual.indexes.get(index):
            problems.append(f"{label}: index {index}: scripts declare {actual.indexes.get(index)}, "
                            f"tables.py wants {expected.indexes.get(index)}")
    return problems


def check_dialect(dialect: str) -> list[str]:
    """Every problem with ``sql/<dialect>/``: the chained steps and the snapshot each against tables.py."""
    found = schema.steps(dialect)
    problems = []
    if not found or found[-1][0] != tables.SCHEMA_VERSION:
        problems.append(f"{dialect}: the last step is {found[-1][0] if found else None}, "
                        f"tables.SCHEMA_VERSION is {tables.SCHEMA_VERSION}")
    expected = tables_model(dialect)
    problems += compare(expected, script_model(dialect, [path for _, path in found]), f"{dialect} steps")
    problems += compare(expected, script_model(dialect, [schema.snapshot(dialect)]), f"{dialect} snapshot")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=schema.DIALECTS, action="append",
                        help="dialect to check (repeatable; default: all)")
    args = parser.parse_args(argv)
    problems = [p for dialect in args.dialect or schema.DIALECTS for p in check_dialect(dialect)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): sql/ and app/index/tables.py disagree", file=sys.stderr)
        return 1
    print(f"sql/ agrees with app/index/tables.py ({', '.join(args.dialect or schema.DIALECTS)}, "
          f"schema version {tables.SCHEMA_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
