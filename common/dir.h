/*
 * dir.h - removing a flat directory: its files, then itself.
 *
 * For runtime directories a process owns alone (DPDK's /var/run/dpdk/<prefix>,
 * which EAL leaves behind even with --no-shconf or --in-memory). Best effort:
 * what cannot be removed stays; nothing is reported.
 */
#ifndef SLUICE_DIR_H
#define SLUICE_DIR_H

/* Unlinks every entry of `path` (not recursively), then the directory. */
void dir_remove_flat(const char *path);

#endif /* SLUICE_DIR_H */
