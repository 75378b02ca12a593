/* deeptree DEPTH STATUS [chdir]: makes a directory "x" in the working
   directory with DEPTH nested directories x/d/d/..., prints how deep it
   got and exits with STATUS.  By default the tree grows at its top
   (mkdir t; rename x -> t/d; rename t -> x), so every call names a short
   path; with "chdir" it grows at its bottom (mkdir d; chdir d), as a
   shell loop would.  With "mv" it makes nothing and renames an existing
   "x" to "moved" (a tree of the lower layer: copied up whole).  The
   sandbox must walk such trees without recursion (issue 12). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 2000;
    int status = argc > 2 ? atoi(argv[2]) : 0;
    int by_chdir = argc > 3 && strcmp(argv[3], "chdir") == 0;
    int made = 0;
    if (argc > 3 && strcmp(argv[3], "mv") == 0) {
        if (rename("x", "moved") != 0) {
            perror("rename");
            return 1;
        }
        printf("moved\n");
        return status;
    }
    if (mkdir("x", 0755) != 0) {
        perror("mkdir x");
        return 1;
    }
    if (by_chdir) {
        if (chdir("x") != 0) {
            perror("chdir x");
            return 1;
        }
        while (made < depth && mkdir("d", 0755) == 0 && chdir("d") == 0)
            made++;
    } else {
        FILE *f = fopen("x/bottom", "w");     /* a file at the bottom */
        if (f) {
            fputs("deep\n", f);
            fclose(f);
        }
        while (made < depth) {
            if (mkdir("t", 0755) != 0 || rename("x", "t/d") != 0 || rename("t", "x") != 0) {
                perror("grow");
                break;
            }
            made++;
        }
    }
    printf("%d\n", made);
    return status;
}
