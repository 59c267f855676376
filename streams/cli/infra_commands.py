"""Commands that talk to Kafka and the registry: topics, generate, produce, consume, demo."""

from __future__ import annotations

import json
import sys
from typing import Annotated, BinaryIO

import typer

from streams.cli.exits import Runtime, explained, fail
from streams.cli.launch import run_faust_app
from streams.cli.options import FaustLogLevel, SchemaVersion, joint_user
from streams.errors import Exit, JointUseError, exit_code_of
from streams.settings import Guarantee, Settings, load_settings

top_level = typer.Typer()
topics_app = typer.Typer(help="Create and inspect the pipeline's topics.", no_args_is_help=True)


def settings_from_options(bootstrap: str | None, registry: str | None, prefix: str | None) -> Settings:
    return load_settings(bootstrap_servers=bootstrap, schema_registry_url=registry, topic_prefix=prefix)


Bootstrap = Annotated[
    str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (JOINTUSE_BOOTSTRAP_SERVERS).")
]
RegistryUrl = Annotated[
    str | None, typer.Option("--registry", help="Schema registry URL (JOINTUSE_SCHEMA_REGISTRY_URL).")
]
Prefix = Annotated[str | None, typer.Option("--prefix", help="Topic name prefix (JOINTUSE_TOPIC_PREFIX).")]


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int, typer.Option(help="Partitions per topic.", min=1)] = 4,
    replication: Annotated[
        int | None,
        typer.Option(
            help="Copies of each partition (default: 3, or one per broker on a smaller cluster); "
            "with 3 or more, min.insync.replicas is 2.",
            min=1,
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Create the ingest, delivery, dead-letter and audit topics for every joint user (idempotent).

    Examples:
      jointuse topics create --partitions 4 --prefix staging
      jointuse topics check     (then: which topics are below their intended replication)
    """
    from streams.kafka.admin import create_topics
    from streams.policy.loader import load_policies
    from streams.topology import Topology

    settings = settings_from_options(bootstrap, None, prefix)
    policy = load_policies(settings.policy_path).latest
    try:
        results = create_topics(
            settings.kafka_common(),
            Topology(settings.topic_prefix).specs(policy),
            partitions=partitions,
            replication=replication,
        )
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    for result in results:
        typer.echo(f"{'created' if result.created else 'exists '}  {result.name}")


@topics_app.command("check")
def topics_check(bootstrap: Bootstrap = None, prefix: Prefix = None) -> None:
    """Report the pipeline's topics below their intended replication: fewer than 3 copies (or one
    per broker on a smaller cluster), min.insync.replicas below 2 with 3 copies, or copies out of
    sync now (a node down or behind).

    Exit codes: 0 every topic as intended; 1 problems found (one line each); 3 no broker answered.

    Example: jointuse topics check --prefix staging
    """
    from streams.kafka.admin import replication_problems

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        problems = replication_problems(settings.kafka_common(), settings.topic_prefix)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    for problem in problems:
        typer.echo(f"{problem.topic}: {problem.problem}")
    if problems:
        raise typer.Exit(int(Exit.PROBLEMS))
    typer.echo(f"every {settings.topic_prefix}.* topic is replicated as intended", err=True)


@topics_app.command("list")
def topics_list(bootstrap: Bootstrap = None, prefix: Prefix = None) -> None:
    """List the pipeline's topics with their partition counts."""
    from streams.kafka.company_client import topic_partition_counts

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        counts = topic_partition_counts(settings)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    for name, partitions in sorted(counts.items()):
        if name.startswith(settings.topic_prefix + "."):
            typer.echo(f"{name}\t{partitions}")


@topics_app.command("describe")
def topics_describe(
    json_output: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Partitions, offsets and record counts of the pipeline's topics.

    Example: jointuse topics describe --json
    """
    from streams.kafka.lag import topic_offsets

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        rows = topic_offsets(settings, prefix=settings.topic_prefix + ".")
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    if json_output:
        typer.echo(json.dumps([row.__dict__ | {"records": row.high - row.low} for row in rows], indent=2))
        return
    typer.echo(f"{'topic':60} {'part':>4} {'low':>10} {'high':>10} {'records':>10}")
    for row in rows:
        typer.echo(f"{row.topic:60} {row.partition:>4} {row.low:>10} {row.high:>10} {row.high - row.low:>10}")


@top_level.command("generate")
def generate_command(
    count: Annotated[int, typer.Option("--count", help="Number of records.", min=0)] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same records.")] = 0,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Source company (repeatable).", callback=joint_user)
    ] = None,
    secrecy: Annotated[
        float, typer.Option(help="Share of records with secrecy-of-communications content.", min=0.0, max=1.0)
    ] = 0.3,
    sensitive: Annotated[float, typer.Option(help="Share with sensitive content.", min=0.0, max=1.0)] = 0.2,
    opt_out: Annotated[float, typer.Option(help="Share with a marketing opt-out.", min=0.0, max=1.0)] = 0.15,
    stop: Annotated[float, typer.Option(help="Share with a joint-use stop.", min=0.0, max=1.0)] = 0.05,
    invalid: Annotated[float, typer.Option(help="Share of invalid lines.", min=0.0, max=1.0)] = 0.02,
) -> None:
    """Synthetic customers as JSON Lines on stdout, deterministic by seed.

    Example: jointuse generate --count 1000 --seed 1 --source jcom > jcom.jsonl
    """
    from streams.devtools.synthetic import Generator, Mix, to_line

    mix = Mix(secrecy=secrecy, sensitive=sensitive, marketing_opt_out=opt_out, joint_use_stop=stop, invalid=invalid)
    generator = Generator(seed=seed, mix=mix, sources=tuple(source or ("jcom", "jcom-insurance")))
    out = sys.stdout
    for _, record in generator.records(count):
        out.write(to_line(record) + "\n")


def _opened(path: str) -> BinaryIO:
    """The input file, opened before any network call: a missing one is a usage error (2)."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # closed by the command that reads it
    except OSError as exc:
        fail(f"{path}: cannot read the file ({exc.strerror or type(exc).__name__})")


@top_level.command("produce")
def produce_command(
    file: Annotated[str, typer.Argument(help="JSON Lines file, or - for stdin.")],
    as_company: Annotated[
        str, typer.Option("--as", help="The producing company (its ingest topic).", callback=joint_user)
    ],
    schema_version: SchemaVersion = None,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Validate JSON Lines, register the schema, and produce to the company's ingest topic.

    Rejected lines are reported on stderr (line number and rule); exit 1 when any line was rejected.
    Example: jointuse generate --count 100 --source jcom | jointuse produce - --as jcom
    """
    from streams.cli.progress import count_progress
    from streams.kafka.company_client import produce_lines

    settings = settings_from_options(bootstrap, registry, prefix)
    lines = _opened(file)
    try:
        with lines, count_progress("producing", disable=quiet) as bar:
            task = bar.add_task("produce", total=None)
            stats = produce_lines(
                settings,
                as_company,
                lines,
                schema_version=schema_version,
                on_progress=lambda produced: bar.update(task, completed=produced),
            )
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    for rejected in stats.rejected:
        typer.echo(f"line {rejected.line}: rejected: {rejected.reason}", err=True)
    typer.echo(
        f"produced {stats.produced} record(s) to {stats.topic}; rejected {len(stats.rejected)}; "
        f"{stats.rate:,.0f} records/s",
        err=True,
    )
    if stats.rejected:
        raise typer.Exit(Exit.PROBLEMS)


@top_level.command("consume")
def consume_command(
    as_company: Annotated[
        str | None, typer.Option("--as", help="Read this company's delivery topic.", callback=joint_user)
    ] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="Read this topic instead.")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep waiting for new records.")] = False,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the earliest offset.")] = False,
    max_records: Annotated[int | None, typer.Option("--max", help="Stop after N records.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Consumer group (default: <company>.cli).")] = None,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
) -> None:
    """Print decoded records (deliveries by default) as JSON lines, with their purpose headers.

    Example: jointuse consume --as jcom-insurance --from-beginning --max 10
    """
    from streams.kafka.company_client import consume_json

    settings = settings_from_options(bootstrap, registry, prefix)
    if (as_company is None) == (topic is None):
        fail("give exactly one of --as or --topic")
    try:
        for line in consume_json(
            settings,
            company=as_company,
            topic=topic,
            follow=follow,
            from_beginning=from_beginning,
            max_records=max_records,
            group=group,
        ):
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)


@top_level.command("worker")
def worker_command(
    worker_id: Annotated[
        str | None,
        typer.Option("--worker-id", help="Stable id of this worker (names its transactions; JOINTUSE_WORKER_ID)."),
    ] = None,
    guarantee: Annotated[
        Guarantee | None,
        typer.Option("--guarantee", help="Delivery guarantee (JOINTUSE_GUARANTEE, exactly_once)."),
    ] = None,
    runtime: Annotated[
        Runtime, typer.Option("--runtime", help="faust (faust-streaming agent) or confluent (confluent-kafka loop).")
    ] = Runtime.FAUST,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Records per transaction (JOINTUSE_BATCH_SIZE, 1000).", min=1)
    ] = None,
    max_idle: Annotated[
        float | None, typer.Option("--max-idle", help="confluent runtime: exit after this many idle seconds.")
    ] = None,
    log_level: Annotated[
        FaustLogLevel,
        typer.Option("--log-level", help="faust runtime: crit, error, warn, info, debug.", case_sensitive=False),
    ] = FaustLogLevel.WARN,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
) -> None:
    """Run the pipeline: decode, validate, decide, deliver, dead-letter, audit; until SIGTERM/SIGINT.

    An outage of the broker or the registry pauses it (503 on /readyz) and it goes on by itself.
    Exit 2 when it cannot start for its settings, policy or schemas; 3 when Kafka, the registry or
    the subject index does not answer at start-up (both runtimes). Exit 70 when a fatal Kafka error
    stopped it (fenced again and again: another worker with the same id; unauthorized; a broker too
    old to fence; more than 10 aborted batches in a row): restart it, and it resumes from the last
    committed transaction.
    Examples:
      jointuse worker --worker-id host1-0
      jointuse worker --runtime confluent --guarantee at_least_once
      JOINTUSE_DECIDE_PROCESSES=2 jointuse worker --runtime confluent   # two child processes decide
    """
    from streams.worker.parts import default_worker_id

    given = settings_from_options(bootstrap, registry, prefix)
    chosen_id = worker_id or given.worker_id or default_worker_id()
    settings = given.model_copy(
        update={
            "worker_id": chosen_id,
            "guarantee": guarantee or given.guarantee,
            "batch_size": batch_size or given.batch_size,
        }
    )
    if runtime is Runtime.FAUST:
        from streams.app import build_pipeline_app

        run_faust_app("the worker", settings, lambda: build_pipeline_app(settings, chosen_id), log_level=log_level)
    from streams.errors import FatalError
    from streams.worker.confluent_main import run_worker

    try:
        stats = run_worker(settings, worker_id=chosen_id, guarantee=settings.guarantee, max_idle_seconds=max_idle)
    except FatalError as exc:
        fail(f"the worker stopped: {exc}; restart it (it resumes from the last commit)", Exit.FATAL)
    except JointUseError as exc:  # a configuration (2) or a service (3) it cannot start without
        cause = explained(exc)
        fail(f"the worker cannot start: {cause}", exit_code_of(cause))
    typer.echo(f"worker stopped: {stats.records} records in {stats.batches} batches {stats.by_status}", err=True)


@top_level.command("lag")
def lag_command(
    group: Annotated[str | None, typer.Option("--group", help="Consumer group (default: the pipeline's).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Committed offset, end offset and lag per partition for a consumer group.

    Examples: jointuse lag;  jointuse lag --group jointuse.jcom.analytics --json
    """
    from streams.kafka.lag import group_lag, topic_offsets

    settings = settings_from_options(bootstrap, None, prefix)
    chosen = group or f"{settings.topic_prefix}.pipeline"
    try:
        topics = sorted({row.topic for row in topic_offsets(settings, prefix=settings.topic_prefix + ".")})
        rows = group_lag(settings, chosen, topics)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    if json_output:
        typer.echo(json.dumps([r.__dict__ | {"lag": r.lag, "group": chosen} for r in rows], indent=2))
        return
    typer.echo(f"group {chosen}")
    typer.echo(f"{'topic':60} {'part':>4} {'committed':>10} {'end':>10} {'lag':>8}")
    for r in rows:
        committed = "-" if r.committed is None else str(r.committed)  # never committed: all of it is lag
        typer.echo(f"{r.topic:60} {r.partition:>4} {committed:>10} {r.high:>10} {r.lag:>8}")


@top_level.command("demo")
def demo_command(
    count: Annotated[
        int, typer.Option("--count", help="Records to produce (split between two companies).", min=1)
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 2026,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the demo's worker running to explore.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the worker a --keep demo left running, and exit.")] = False,
) -> None:
    """The whole flow on the local broker: topics, a worker, two producers, deliveries, a summary.

    Examples:
      jointuse demo --count 2000
      jointuse demo --keep      (then: jointuse demo --stop; `make demo KEEP=1` / `make down` do both)

    Exit codes: 0 every record audited once and nothing leaked; 1 a check failed; 3 a Kafka error.
    """
    from streams.devtools.demo import run_demo, stop_kept

    if stop:
        prefix = stop_kept(load_settings())
        typer.echo(f"stopped the demo worker of {prefix}" if prefix else "no demo worker was left running", err=True)
        return
    try:
        code = run_demo(load_settings(), count=count, seed=seed, keep=keep)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    raise typer.Exit(code)
