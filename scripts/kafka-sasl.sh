#!/usr/bin/env bash
# The local Apache Kafka of scripts/kafka.sh, reachable only over SASL_SSL (SCRAM-SHA-512 over
# TLS with a CA generated per start), as a managed cluster is: for the secured test pass and for
# trying orderflow's client security settings.
#
# usage: scripts/kafka-sasl.sh install|start|ensure|stop|status   (as scripts/kafka.sh)
#
#   `start` and `ensure` print the bootstrap address; the client settings are in
#   .tools/kafka-sasl-run/client.env, one ORDERFLOW_...=value per line:
#
#     ORDERFLOW_BROKERS=$(scripts/kafka-sasl.sh start)
#     env $(cat .tools/kafka-sasl-run/client.env) ORDERFLOW_BROKERS=$ORDERFLOW_BROKERS orderflow topics create
set -euo pipefail
KAFKA_FLAVOUR=sasl_ssl exec "$(dirname "${BASH_SOURCE[0]}")/kafka.sh" "$@"
