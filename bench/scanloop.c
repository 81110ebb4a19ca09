/* The floor for hostdev's scan: the same system calls on the same sysfs files in C, in the
 * same order (the bus entries sorted, then per function what hostdev.host.rawread reads), so
 * `make bench` can report the Python/C ratio. */
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

/* Names of the VFs the PFs scanned so far list (virtfnN links), as rawread's known_vfs. */
#define VF_SLOTS 16384 /* a power of two, four times the VFs of the synthetic host */
static char vf_names[VF_SLOTS][32];

static unsigned long name_hash(const char *s) {
    unsigned long h = 5381;
    while (*s) h = h * 33 + (unsigned char)*s++;
    return h;
}

static int vf_slot(const char *name) {
    unsigned long i = name_hash(name) & (VF_SLOTS - 1);
    while (vf_names[i][0] && strcmp(vf_names[i], name)) i = (i + 1) & (VF_SLOTS - 1);
    return (int)i;
}

static void add_vf(const char *link) {
    const char *base = strrchr(link, '/');
    base = base ? base + 1 : link;
    if (strlen(base) < sizeof vf_names[0]) strcpy(vf_names[vf_slot(base)], base);
}

static int is_known_vf(const char *name) { return vf_names[vf_slot(name)][0] != 0; }

/* Mirrors hostdev.host.rawread: readlink of the bus entry, a directory fd on its resolved
 * path, the four common files; a VF already listed by its PF that is on vfio-pci or unbound
 * then needs only its group link and vfio-dev listing; any other function is listed by path
 * and its optional entries read. */
static void scan_device(int bus_fd, const char *sys_root, const char *bus, const char *name) {
    char path[8192], sub[8400], target[4096], uevent[64];
    ssize_t n = readlinkat(bus_fd, name, target, sizeof target - 1);
    if (n < 0) return;
    target[n] = 0;
    if (!strncmp(target, "../../../devices/", 17))
        snprintf(path, sizeof path, "%s/%s", sys_root, target + 9);
    else
        snprintf(path, sizeof path, "%s/%s", bus, name);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    read_at(dfd, "uevent");
    memcpy(uevent, buf, sizeof uevent);
    read_at(dfd, "revision");
    read_at(dfd, "numa_node");
    read_at(dfd, "driver_override");
    int vfio = !strncmp(uevent, "DRIVER=vfio-pci\n", 16);
    if (is_known_vf(name) && (vfio || !strncmp(uevent, "PCI_CLASS=", 10))) {
        link_at(dfd, "iommu_group");
        if (vfio) { snprintf(sub, sizeof sub, "%s/vfio-dev", path); list_path(sub); }
        close(dfd);
        return;
    }
    int has[8] = {0};
    const char *names[] = {"driver", "physfn", "vfio-dev", "net", "sriov_totalvfs",
                           "mdev_supported_types", NULL};
    DIR *d = opendir(path);
    struct dirent *e;
    int virtfns = 0, entries = 0;
    while (d && (e = readdir(d))) {
        entries++;
        for (int i = 0; names[i]; i++) if (!strcmp(e->d_name, names[i])) has[i] = 1;
        if (!strncmp(e->d_name, "virtfn", 6)) virtfns++;
    }
    if (d) closedir(d);
    if (!entries) { close(dfd); return; }
    link_at(dfd, "iommu_group");
    if (has[0] && strncmp(uevent, "DRIVER=", 7)) link_at(dfd, "driver");
    if (has[1]) link_at(dfd, "physfn");
    if (has[2]) { snprintf(sub, sizeof sub, "%s/vfio-dev", path); list_path(sub); }
    if (has[3]) { snprintf(sub, sizeof sub, "%s/net", path); list_path(sub); }
    if (has[4]) {
        for (int i = 0; i < virtfns; i++) {
            char vf[32];
            snprintf(vf, sizeof vf, "virtfn%d", i);
            n = readlinkat(dfd, vf, target, sizeof target - 1);
            if (n > 0) { target[n] = 0; add_vf(target); }
        }
        read_at(dfd, "sriov_drivers_autoprobe");
        read_at(dfd, "sriov_totalvfs");
        read_at(dfd, "sriov_numvfs");
    }
    close(dfd);
}

static int not_dot(const struct dirent *e) { return e->d_name[0] != '.'; }

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
        memset(vf_names, 0, sizeof vf_names);
        struct dirent **listed;
        int n = scandir(bus, &listed, not_dot, alphasort); /* address order, as the scanner */
        for (int i = 0; i < n; i++) {
            scan_device(bus_fd, argv[1], bus, listed[i]->d_name);
            free(listed[i]);
        }
        if (n >= 0) free(listed);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        if (s < best) best = s;
        if (r == rounds - 1) printf("%d %.6f\n", n, best);
    }
    return 0;
}
