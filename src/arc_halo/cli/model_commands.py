"""`arc-halo model ... | plot training`: models in and out, their search indexes, training curves."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psycopg

from arc_halo.cli.arguments import REPLICA_HELP, Commands, file_with_suffix, non_negative_int, reader
from arc_halo.errors import InvalidInputError

if TYPE_CHECKING:
    from arc_halo.embeddings import IndexStatus


def import_(args: argparse.Namespace) -> None:
    from arc_halo import db, hf

    store = None
    if args.external or args.external_dir:
        from arc_halo import objectstore

        store = objectstore.open_store(args.external or args.external_dir)
    with db.connect() as conn:
        result = hf.import_model(conn, args.directory, args.name, args.version, progress=True, store=store,
                                 workers=args.workers)
    if result.created:
        verb = "imported"
    else:
        # Asked for something the stored copy does not have: say so as an error (nothing was written).
        unmet = [f"--name {args.name!r} was not used"] if args.name and args.name != result.model_name else []
        if store is not None:
            unmet.append(f"{'--external' if args.external else '--external-dir'} was not applied (its tensors stay where "
                         "they are stored)")
        if unmet:
            raise InvalidInputError(f"this model is already registered as {result.model_name!r} ({result.model_id}, same "
                                    f"content), nothing written: {'; '.join(unmet)}; to store it again differently, "
                                    "delete the stored model first")
        verb = f"already registered as {result.model_name!r} (same content), nothing written:"
    print(f"{verb} {result.model_id}: {result.tensor_count} tensors, {result.parameter_count:,} parameters, "
          f"{result.embedding_count:,} embeddings", flush=True)
    if result.created and not args.no_index:
        # The model is visible and exactly searchable now; its approximate index is built after the commit.
        _build_indexes([result.model_id], rebuild=False)


def _build_indexes(model_ids: Iterable[uuid.UUID], rebuild: bool) -> None:
    import time

    from arc_halo import db, embeddings

    with db.connect() as conn:
        for model_id in model_ids:
            started = time.perf_counter()
            try:
                status = embeddings.build_index(conn, model_id, rebuild=rebuild)
            except psycopg.errors.InsufficientPrivilege:
                print(f"index of {model_id}: not built (needs the schema owner: run `arc-halo model index` as it); "
                      "search is exact until then")
                continue
            print(f"index of {model_id}: {_index_summary(status)} ({time.perf_counter() - started:.1f} s)")


def _index_summary(status: IndexStatus) -> str:
    if status.state == "exact":
        return "none needed, searched exactly" + (f" ({status.rows:,} vectors)" if status.partition else "")
    if status.state == "ready":
        index, plan = status.index_plan, status.plan
        summary = f"ready ({index.method}, m={index.m}, {status.rows:,} vectors)"
        if (index.kind, index.m, index.ef_construction) != (plan.kind, plan.m, plan.ef_construction):
            summary += (f"; an earlier plan's graph: --rebuild builds the planned one ({plan.method}, m={plan.m},"
                        f" ef_construction={plan.ef_construction})")
        return summary
    return status.state


def index(args: argparse.Namespace) -> None:
    from arc_halo import db, embeddings, registry

    with db.connect() as conn:
        if args.all:
            ids = [model.model_id for model in registry.list_models(conn)
                   if args.rebuild or embeddings.index_status(conn, model.model_id).state in ("missing", "invalid")]
        else:
            ids = embeddings.model_ids(conn, args.model)
    _build_indexes(ids, rebuild=args.rebuild)


def export(args: argparse.Namespace) -> None:
    from arc_halo import hf

    with reader(args) as conn:
        print(f"wrote {hf.export_model(conn, args.model, args.output, progress=True)}")


def delete(args: argparse.Namespace) -> None:
    from arc_halo import db, model_delete

    with db.connect(tenant=args.tenant) as conn:
        deleted = model_delete.delete_model(conn, args.model)
    external = (f" ({deleted.external_tensors_deleted} kept their objects: `arc-halo storage orphans` lists them)"
                if deleted.external_tensors_deleted else "")
    print(f"deleted model {deleted.model_name!r} ({deleted.model_id}) and everything that was its; "
          f"{deleted.tensors_deleted} tensors no other model uses{external}")


def list_(args: argparse.Namespace) -> None:
    from arc_halo import db, embeddings, registry

    with db.connect() as conn:
        for model in registry.list_models(conn):
            # The last column: whether search uses an index for the model yet (exact, ready, building...).
            print("\t".join(str(value) for value in (model.model_id, model.model_name, model.version, model.architecture,
                                                     model.num_layers, model.num_attention_heads, model.status,
                                                     embeddings.index_status(conn, model.model_id).state)))


def plot_training(args: argparse.Namespace) -> None:
    from pathlib import Path

    from arc_halo import plots

    with reader(args) as conn:
        print(f"wrote {plots.training_curves(conn, args.session, Path(args.output))}")


def register(commands: Commands) -> None:
    plot = commands.add_parser("plot", help="pictures").add_subparsers(dest="plot_command", required=True)
    curves = plot.add_parser("training", help="loss and learning rate against step for a session, to PNG/SVG/PDF")
    curves.add_argument("session", help="session name or id")
    curves.add_argument("--output", "-o", default="training_curves.png",
                        type=file_with_suffix(".png", ".svg", ".pdf"))
    curves.add_argument("--replica", action="store_true", help=REPLICA_HELP)
    curves.set_defaults(func=plot_training)
    model = commands.add_parser("model", help="Hugging Face models in and out").add_subparsers(
        dest="model_command", required=True)
    model_import = model.add_parser("import", help="register a model directory (config.json + safetensors)")
    model_import.add_argument("directory")
    model_import.add_argument("--name", help="model_name (default: the directory's name)")
    model_import.add_argument("--version", default="1.0.0")
    model_import.add_argument("--no-index", action="store_true",
                              help="do not build the search index after the import (arc-halo model index does later)")
    model_import.add_argument("--workers", type=non_negative_int, default=2, metavar="N",
                              help="connections writing tensor chunks in parallel (default 2; 0: the one connection)")
    external = model_import.add_mutually_exclusive_group()
    external.add_argument("--external", metavar="URI", help="keep tensor bytes at s3://bucket/prefix, gs://, az:// "
                          "or file:///directory, not in the database (credentials from AWS_*/GOOGLE_*/AZURE_* variables)")
    external.add_argument("--external-dir", metavar="DIR", help="the same as --external file://DIR")
    model_import.set_defaults(func=import_)
    model_export = model.add_parser("export", help="write a stored model's tensors to a safetensors file")
    model_export.add_argument("model", help="model id or name")
    model_export.add_argument("output", help="path of the .safetensors file to write",
                              type=file_with_suffix(".safetensors"))
    model_export.add_argument("--replica", action="store_true", help=REPLICA_HELP)
    model_export.set_defaults(func=export)
    model_delete = model.add_parser("delete", help="delete a model and everything that is its, in one transaction")
    model_delete.add_argument("model", help="model id or name")
    model_delete.add_argument("--tenant", default=None, help="act as this tenant (row-level security)")
    model_delete.set_defaults(func=delete)
    model.add_parser("list", help="registered models, the last column their search index's state").set_defaults(
        func=list_)
    model_index = model.add_parser("index", help="build a model's approximate search index if it has none that is "
                                   "valid (imports do it after their commit)")
    which = model_index.add_mutually_exclusive_group(required=True)
    which.add_argument("model", nargs="?", help="model id or name")
    which.add_argument("--all", action="store_true", help="every model whose index is missing or invalid")
    model_index.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    model_index.set_defaults(func=index)
