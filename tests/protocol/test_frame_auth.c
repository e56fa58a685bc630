#include <criterion/criterion.h>
Test(frame_auth, todo) {}
