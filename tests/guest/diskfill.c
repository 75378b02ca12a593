#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* Write 64 KiB blocks to argv[1] until a write fails or 1 GiB. */
int main(int argc, char **argv){
  static char buf[65536]; memset(buf, 'x', sizeof buf);
  int fd = open(argv[1], O_WRONLY|O_CREAT|O_TRUNC, 0644);
  if (fd < 0) { perror("open"); return 1; }
  long total = 0;
  for (;;) {
    ssize_t w = write(fd, buf, sizeof buf);
    if (w < 0) { printf("%s after %ld KiB\n", strerrorname_np(errno), total >> 10); break; }
    total += w;
    if (total >= (1L << 30)) { printf("wrote 1 GiB\n"); break; }
  }
  close(fd);
  return 0;
}
