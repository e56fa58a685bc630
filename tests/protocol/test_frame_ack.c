#include <criterion/criterion.h>
Test(frame_ack, todo) {}
