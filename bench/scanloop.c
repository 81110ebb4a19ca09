/* The floor for hostdev's scan: the same sysfs reads in C (readlink of the bus entry, a
 * listing of the device directory, then the same attribute reads and links the Python
 * scanner does), so `make bench` can report the Python/C ratio on the same files. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[65536];

static void read_at(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (read(fd, buf, sizeof buf) < 0) buf[0] = 0;
    close(fd);
}

static void link_at(int dfd, const char *name) {
    char target[4096];
    if (readlinkat(dfd, name, target, sizeof target) < 0) target[0] = 0;
}

static void list_at(int dfd, const char *name) {
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    while (d && readdir(d)) {}
    if (d) closedir(d);
}

static void scan_device(const char *bus, const char *name) {
    char path[4096], target[4096];
    snprintf(path, sizeof path, "%s/%s", bus, name);
    if (readlink(path, target, sizeof target) < 0) return;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    link_at(dfd, "iommu_group");
    int has[8] = {0};
    const char *names[] = {"numa_node", "driver_override", "sriov_totalvfs", "physfn",
                           "net", "vfio-dev", "mdev_supported_types", NULL};
    DIR *d = fdopendir(dup(dfd));
    struct dirent *e;
    int virtfns = 0;
    while (d && (e = readdir(d))) {
        for (int i = 0; names[i]; i++) if (!strcmp(e->d_name, names[i])) has[i] = 1;
        if (!strncmp(e->d_name, "virtfn", 6)) virtfns++;
    }
    if (d) closedir(d);
    read_at(dfd, "uevent");
    read_at(dfd, "revision");
    if (has[0]) read_at(dfd, "numa_node");
    if (has[1]) read_at(dfd, "driver_override");
    if (has[2]) {
        list_at(dfd, ".");
        for (int i = 0; i < virtfns; i++) {
            char vf[32];
            snprintf(vf, sizeof vf, "virtfn%d", i);
            link_at(dfd, vf);
        }
        read_at(dfd, "sriov_drivers_autoprobe");
        read_at(dfd, "sriov_totalvfs");
        read_at(dfd, "sriov_numvfs");
    }
    if (has[3]) link_at(dfd, "physfn");
    if (has[4]) list_at(dfd, "net");
    if (has[5]) list_at(dfd, "vfio-dev");
    close(dfd);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: scanloop SYSFS_ROOT ROUNDS\n"); return 2; }
    char bus[4096];
    snprintf(bus, sizeof bus, "%s/bus/pci/devices", argv[1]);
    int rounds = atoi(argv[2]);
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        DIR *d = opendir(bus);
        struct dirent *e;
        int n = 0;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            scan_device(bus, e->d_name);
            n++;
        }
        if (d) closedir(d);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        if (s < best) best = s;
        if (r == rounds - 1) printf("%d %.6f\n", n, best);
    }
    return 0;
}
