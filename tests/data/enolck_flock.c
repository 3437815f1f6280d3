/* LD_PRELOAD shim: every flock() fails with ENOLCK, as on an NFS mount without lock support.
 * flock() is the call HDF5 makes for its file locks (tests/test_hdf5_locking.py checks that a
 * plain h5py.File open fails under this shim, so a build using fcntl locks would be noticed). */
#include <errno.h>

int flock(int fd, int operation) {
    (void)fd;
    (void)operation;
    errno = ENOLCK;
    return -1;
}
