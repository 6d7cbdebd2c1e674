"""`volo-export models`: the registered VOLO variants."""

from __future__ import annotations

from volo_export.cli.options import AsJson
from volo_export.cli.render import print_json
from volo_export.cli.console import stdout


def command(as_json: AsJson = False) -> None:
    """List the registered VOLO variants."""
    from rich.table import Table

    from volo_export.models.variants import REGISTRY
    from volo_export.models.volo import count_macs

    rows = [dict(name=c.name, image_size=c.img_size, crop_pct=c.preprocessing.crop_pct,
                 layers=list(c.layers), embed_dims=list(c.embed_dims), gmacs=round(count_macs(c) / 1e9, 1),
                 published_top1=c.published_top1) for c in REGISTRY.values()]
    if as_json:
        print_json(rows)
        return
    table = Table(title="VOLO variants")
    for col in ("name", "image_size", "crop_pct", "layers", "embed_dims", "gmacs", "published_top1"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(*(str(r[c]) for c in r))
    stdout.print(table)
