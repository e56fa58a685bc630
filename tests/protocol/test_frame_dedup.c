#include <criterion/criterion.h>
Test(frame_dedup, todo) {}
