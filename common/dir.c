/* dir.c - see dir.h. */
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "common/dir.h"

void
dir_remove_flat(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *e;

	if (dir == NULL)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(dir), e->d_name, 0);
	}
	closedir(dir);
	rmdir(path);
}
