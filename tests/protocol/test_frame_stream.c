#include <criterion/criterion.h>
Test(frame_stream, todo) {}
