/* log_io_uring.c - io_uring backend (placeholder until step 1 lands). */
#include "nvme-log/log.h"
