"""The incremental scenario of issue #3, shared by several tests."""

from __future__ import annotations

import random

from tests.servers.fixtures import SourceModel


def mutate(model: SourceModel, seed: int = 11) -> dict[str, int]:
    """20 new items (dspace: reported as `updated`), 15 updated (metadata or a file),
    3 with an added file, 2 with a removed file, 10 deleted. Returns the counts."""
    rng = random.Random(seed)
    keys = sorted(model.items)
    rng.shuffle(keys)
    with_files = [k for k in keys if model.items[k].style != "plain" and model.items[k].files]
    styled = [k for k in keys if model.items[k].style != "plain"]
    deleted = keys[:10]
    rest = [k for k in keys if k not in deleted]
    meta_updates = [k for k in styled if k in rest][:8]
    file_updates = [k for k in with_files if k in rest and k not in meta_updates][:7]
    used = set(meta_updates) | set(file_updates)
    add_to = [k for k in styled if k in rest and k not in used][:3]
    used |= set(add_to)
    remove_from = [k for k in with_files if k in rest and k not in used][:2]
    for k in deleted:
        model.delete_item(k)
    for i, k in enumerate(meta_updates):
        model.update_metadata(k, title=f"Revised title {i} & more", creators=["Nowak, Zoë"])
    for i, k in enumerate(file_updates):
        model.replace_file(k, 0, f"new content {i}\n".encode() * 40)
    for i, k in enumerate(add_to):
        model.add_file(k, f"supplement {i} – données.csv", b"a,b\n1,2\n" * (i + 1), "text/csv")
    for k in remove_from:
        model.remove_file(k, model.items[k].files[-1].name)
    for i in range(20):
        model.create_item(("dspace", "recipe", "plain")[i % 3])
    return {"created": 20, "updated": 15 + 3 + 2, "deleted": 10}
