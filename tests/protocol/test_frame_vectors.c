#include <criterion/criterion.h>
Test(frame_vectors, todo) {}
