"""Results for people: a `results.Table` as a rich table or as GitHub markdown. The one renderer;
rich is imported when a table is drawn."""

from __future__ import annotations

from volo_export.results import Mark, Table

TONES = {"good": "green", "bad": "red", "error": "red", "plugin": "magenta", "warning": "yellow", "info": "cyan"}


def _markup(cell) -> str:
    """A cell as rich markup: plain text escaped, a Mark coloured by its tone."""
    from rich.markup import escape

    if isinstance(cell, Mark):
        return f"[{TONES.get(cell.tone, 'default')}]{escape(cell.text)}[/]"
    return escape(cell)


def _plain(cell) -> str:
    return cell.text if isinstance(cell, Mark) else cell


def rich_table(data: Table):
    """`data` as a rich Table."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    title = escape(data.title) + (f": {_markup(data.status)}" if data.status else "")
    table = RichTable(title=title, caption=data.caption)
    for column in data.columns:
        table.add_column(column.name, justify=column.justify, no_wrap=column.no_wrap,
                         **({"overflow": column.overflow} if column.overflow else {}))
    for i, row in enumerate(data.rows):
        table.add_row(*(_markup(cell) for cell in row), end_section=i in data.section_ends)
    return table


def markdown_table(data: Table) -> list[str]:
    """`data` as GitHub markdown lines: the bold title, a blank line, the table."""
    title = data.title + (f": {data.status.text}" if data.status else "")
    return [f"**{title}**", "", "| " + " | ".join(c.name for c in data.columns) + " |",
            "|" + "|".join("---" for _ in data.columns) + "|"] + \
        ["| " + " | ".join(_plain(cell) for cell in row) + " |" for row in data.rows]
