"""``hipstride pipeline``: the service that turns every station's MQTT frames into stored
strides, cues and processed streams, and live metrics for the dashboard.

- :mod:`.config` — settings (TOML, environment, flags) and the station partition;
- :mod:`.ingest` — frame validation, de-duplication, sequence gaps, the durable state;
- :mod:`.station` — per-station descriptions, streaming engine and raw recording;
- :mod:`.runtime` — MQTT with manual acknowledgements, batching, store spool, metrics.

Importing this package loads nothing heavy: the CLI builds its parser from here.
"""

from __future__ import annotations

import argparse

HELP = """\
Run the pipeline: subscribe to every station's frames, run the streaming engine, write
frames' index, stride rows, cues and processed envelopes to the store, keep the raw frames in
recordings, and publish live metrics and cues for the dashboard.

Delivery is at least once from the broker and exactly once in the store: messages are
acknowledged only after their batch is in the store, or in the on-disk spool while the store
is down (replayed in order when it is back); duplicates are recognised by
(station, stream, epoch, seq), also across restarts (state in --state-dir).

Several processes split the stations with --partition I/N (0 <= I < N), each started with
the same N: every station belongs to exactly one of them, by a stable hash of its id. One
process per partition: a second one for a partition that a live process holds exits 2.
The pipeline confirms what is stored (hipstride/v1/<station>/stored); an agent drops a frame
from its spool only then, so nothing depends on the broker's memory.

What stations send is checked against bounds ([limits] in the TOML file, docs/protocol.md
"Bounds and rejections"); a rejected or failing message is counted by reason on /metrics and
the station's ingest topic, acknowledged, and never stops another station.

The store's database: at start a missing InfluxDB 1.x database is created when the account
may (an admin; --no-create-database or [store] create_database = false turns that off);
otherwise the pipeline exits 2 printing the statements to run (CREATE DATABASE, GRANT). A
database dropped, a store down or credentials refused later is an outage: batches spool and
are retried. Only batches the store refuses for their content (a field type conflict) are
kept aside as "refused"; --replay-refused writes them again once the cause is fixed and
exits 0 when all were written, 1 when some are still refused.

configuration (lowest precedence first): --config FILE (TOML), HIPSTRIDE_BROKER,
HIPSTRIDE_BROKER_PASSWORD, HIPSTRIDE_STORE, HIPSTRIDE_STORE_TOKEN, HIPSTRIDE_PARTITION,
HIPSTRIDE_STATE_DIR, HIPSTRIDE_RECORDINGS_DIR, HIPSTRIDE_METRICS_PORT, then flags.

exit codes: 0 stopped, 1 runtime error, 2 bad configuration (also: no database and no right
to create it), 3 broker rejected the credentials, 4 broker unreachable.

examples:
  hipstride pipeline --broker mqtt://pipeline@localhost:1883 --store sqlite:///hipstride.db
  hipstride pipeline --broker mqtt://pipeline@broker:1884 \\
      --store influx://hipstride@db:8086/hipstride --partition 0/2 --metrics-port 9464
  (1884: the deployment's services listener, which station passwords cannot use)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``hipstride pipeline`` flags."""
    parser.add_argument("--broker", metavar="URL",
                        help="mqtt[s]://[user@]host[:port] (default mqtt://localhost:1883)")
    parser.add_argument("--store", metavar="URL",
                        help="influx[s]://[USER[:TOKEN]@]HOST[:PORT]/DATABASE or sqlite:///PATH")
    parser.add_argument("--partition", metavar="I/N",
                        help="handle share I (0-based) of N; every process uses the same N")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="dedup index, descriptions and store spool "
                             "(default ~/.local/state/hipstride/pipeline)")
    parser.add_argument("--recordings", metavar="DIR",
                        help="raw recordings (default STATE_DIR/recordings)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="stop after S seconds (default: run until stopped)")
    parser.add_argument("--no-create-database", dest="create_database", action="store_const",
                        const=False, default=None,
                        help="never create a missing database: exit 2 with the statement "
                             "to run ([store] create_database = false)")
    parser.add_argument("--replay-refused", action="store_true",
                        help="instead of running: write the batches the store refused (kept "
                             "in --state-dir) again, report what was written; exit 0 when "
                             "all were, 1 when some are still refused")
