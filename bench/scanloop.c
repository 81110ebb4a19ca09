/* The floor for hostdev's scan: the same system calls on the same sysfs files in C (readlink
 * of the bus entry, a listing of the device directory, then the same attribute reads and
 * links the Python scanner makes), so `make bench` can report the Python/C ratio. */
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

static void list_path(const char *path) {
    DIR *d = opendir(path);
    while (d && readdir(d)) {}
    if (d) closedir(d);
}

/* Mirrors hostdev.host.rawread: readlink of the bus entry, a listing of the device directory
 * by its resolved path, a directory fd for the attribute reads and links. */
static void scan_device(int bus_fd, const char *sys_root, const char *bus, const char *name) {
    char path[4096], sub[4200], target[4096];
    ssize_t n = readlinkat(bus_fd, name, target, sizeof target - 1);
    if (n < 0) return;
    target[n] = 0;
    if (!strncmp(target, "../../../devices/", 17))
        snprintf(path, sizeof path, "%s/%s", sys_root, target + 9);
    else
        snprintf(path, sizeof path, "%s/%s", bus, name);
    int has[8] = {0};
    const char *names[] = {"numa_node", "driver_override", "sriov_totalvfs", "physfn",
                           "net", "vfio-dev", "mdev_supported_types", NULL};
    DIR *d = opendir(path);
    struct dirent *e;
    int virtfns = 0, entries = 0;
    while (d && (e = readdir(d))) {
        entries++;
        for (int i = 0; names[i]; i++) if (!strcmp(e->d_name, names[i])) has[i] = 1;
        if (!strncmp(e->d_name, "virtfn", 6)) virtfns++;
    }
    if (d) closedir(d);
    if (!entries) return;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    read_at(dfd, "uevent");
    link_at(dfd, "iommu_group");
    read_at(dfd, "revision");
    if (has[0]) read_at(dfd, "numa_node");
    if (has[1]) read_at(dfd, "driver_override");
    if (has[3]) link_at(dfd, "physfn");
    if (has[5]) { snprintf(sub, sizeof sub, "%s/vfio-dev", path); list_path(sub); }
    if (has[4]) { snprintf(sub, sizeof sub, "%s/net", path); list_path(sub); }
    if (has[2]) {
        for (int i = 0; i < virtfns; i++) {
            char vf[32];
            snprintf(vf, sizeof vf, "virtfn%d", i);
            link_at(dfd, vf);
        }
        read_at(dfd, "sriov_drivers_autoprobe");
        read_at(dfd, "sriov_totalvfs");
        read_at(dfd, "sriov_numvfs");
    }
    close(dfd);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: scanloop SYSFS_ROOT ROUNDS\n"); return 2; }
    char bus[4096];
    snprintf(bus, sizeof bus, "%s/bus/pci/devices", argv[1]);
    int bus_fd = open(bus, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
            scan_device(bus_fd, argv[1], bus, e->d_name);
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
