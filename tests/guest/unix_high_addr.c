/* Send a datagram to the AF_UNIX path argv[1] with the destination
 * address placed at 4 GiB, where the low half of the pointer is 0 (a
 * filter that looks at 32 bits only would let it pass unchecked).
 * Prints the errno name of sendto, or "sent". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *where = (void *)(1UL << 32);
    struct sockaddr_un *sa = mmap(where, 4096, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (sa != where) {
        perror("mmap");
        return 2;
    }
    sa->sun_family = AF_UNIX;
    strncpy(sa->sun_path, argv[1], sizeof sa->sun_path - 1);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (sendto(s, "escaped", 7, 0, (struct sockaddr *)sa, sizeof *sa) < 0)
        printf("%s\n", strerrorname_np(errno));
    else
        printf("sent\n");
    return 0;
}
