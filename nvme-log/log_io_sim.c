/* log_io_sim.c - simulated disk backend (placeholder until step 2 lands). */
#include "nvme-log/log.h"
