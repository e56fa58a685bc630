/*
 * cmd.h - the sluice CLI's subcommands, one file each (tools/cmd_*.c), private
 * to tools/. Each takes the arguments after its own name (argv[0] is the
 * subcommand) and returns the process exit code:
 */
#ifndef SLUICE_TOOLS_CMD_H
#define SLUICE_TOOLS_CMD_H

#define CMD_EXIT_OK 0
#define CMD_EXIT_ERROR 1
#define CMD_EXIT_USAGE 2
#define CMD_EXIT_PARTIAL 3

int cmd_stream(int argc, char **argv);       /* cmd_stream.c: create|list|describe|delete */
int cmd_put(int argc, char **argv);          /* cmd_put.c */
int cmd_consume(int argc, char **argv);      /* cmd_consume.c */
int cmd_produce(int argc, char **argv);      /* cmd_produce.c: udp | tcp | http */
int cmd_log(int argc, char **argv);          /* cmd_log.c: verify | dump */
int cmd_bench_log(int argc, char **argv);    /* cmd_bench_log.c: sluice bench log */
int cmd_bench_api(int argc, char **argv);    /* cmd_bench_api.c: sluice bench api */
int cmd_bench_fanout(int argc, char **argv); /* cmd_bench_fanout.c: sluice bench fanout */
int cmd_bench_ingest(int argc, char **argv); /* cmd_bench_ingest.c: sluice bench ingest */
int cmd_bench_dataplane(int argc, char **argv); /* cmd_bench_dataplane.c */
int cmd_bench_reshard(int argc, char **argv); /* cmd_bench_reshard.c: sluice bench reshard */
int cmd_bench_tcp(int argc, char **argv);    /* cmd_bench_tcp.c: sluice bench tcp */
int cmd_bench_firehose(int argc, char **argv); /* cmd_bench_firehose.c */
int cmd_backup(int argc, char **argv);       /* cmd_backup.c: online backup of a data dir */
int cmd_restore(int argc, char **argv);      /* cmd_backup.c: a backup into a data dir */
int cmd_status(int argc, char **argv);       /* cmd_status.c: readiness and a summary */
int cmd_top(int argc, char **argv);          /* cmd_status.c: rates, refreshed in place */
int cmd_cluster(int argc, char **argv);      /* cmd_cluster.c: status | drain (etcd) */
int cmd_bench_cluster(int argc, char **argv); /* cmd_bench_cluster.c: sluice bench cluster */

#endif /* SLUICE_TOOLS_CMD_H */
