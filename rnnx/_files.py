"""Writing a file atomically: the one place rnnx replaces a file on disk."""
import os
import secrets
import stat


def write_atomic(path, write):
    """Call write(file object) on a new temporary file beside path, fsync it, then rename it
    over path. On any error (or KeyboardInterrupt) the temporary file is removed and path is
    left as it was.

    A symbolic link is followed (the file it names is replaced, the link stays). Where path
    names something other than a regular file (a device such as /dev/full or /dev/stdout, a
    pipe), nothing can be renamed over it: write() goes to it directly, and an error of the
    write or of the flush (a full device) is raised."""
    path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "wb") as f:
            write(f)
            f.flush()
        return
    folder = os.path.dirname(path)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never reuse a file; mode 0o666 less the umask, like open(path, "wb")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:                                    # make the rename itself durable (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
