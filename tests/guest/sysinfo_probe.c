/* sysinfo(2) as the caller sees it: one line of its fields (bytes). */
#include <stdio.h>
#include <sys/sysinfo.h>

int main(void)
{
    struct sysinfo s;
    if (sysinfo(&s) != 0) {
        perror("sysinfo");
        return 1;
    }
    unsigned long long u = s.mem_unit ? s.mem_unit : 1;
    printf("uptime=%ld procs=%u totalram=%llu freeram=%llu sharedram=%llu bufferram=%llu "
           "totalswap=%llu freeswap=%llu\n", s.uptime, s.procs,
           (unsigned long long)s.totalram * u, (unsigned long long)s.freeram * u,
           (unsigned long long)s.sharedram * u, (unsigned long long)s.bufferram * u,
           (unsigned long long)s.totalswap * u, (unsigned long long)s.freeswap * u);
    return 0;
}
