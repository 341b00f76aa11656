/*
 * libudev, loaded when a security key is first looked for rather than with the library
 * that uses it (libpam_mfa_keys.so, or mfa).
 *
 * The USB HID transport (ctap-hid-fido2 → hidapi's hidraw backend) enumerates keys with
 * libudev. Linked normally, libudev.so.1 would be loaded, relocated and initialised by
 * every login, although most logins never look for a key (issue 7: about a fifth of the
 * module's load time). These definitions satisfy hidapi's references to the 16 functions
 * it uses, so the link drops libudev (--as-needed); the first udev_new() dlopens
 * libudev.so.1 and resolves all 16 at once. If it cannot be loaded, udev_new() returns
 * NULL, which hidapi reports as an error: no key is found, nothing crashes.
 *
 * The functions are hidden: libpam_mfa_keys.so exports only its one entry point. libudev
 * is released again if the library that loaded it is ever unloaded (the destructor
 * below; pam_mfa.so loads libpam_mfa_keys.so RTLD_NODELETE, so in the module that is at
 * the process's exit).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

#define HIDDEN __attribute__((visibility("hidden")))

struct udev;
struct udev_device;
struct udev_enumerate;
struct udev_list_entry;

static struct {
	struct udev *(*new_)(void);
	struct udev *(*unref)(struct udev *);
	struct udev_enumerate *(*enumerate_new)(struct udev *);
	int (*enumerate_add_match_subsystem)(struct udev_enumerate *, const char *);
	int (*enumerate_scan_devices)(struct udev_enumerate *);
	struct udev_list_entry *(*enumerate_get_list_entry)(struct udev_enumerate *);
	struct udev_enumerate *(*enumerate_unref)(struct udev_enumerate *);
	struct udev_list_entry *(*list_entry_get_next)(struct udev_list_entry *);
	const char *(*list_entry_get_name)(struct udev_list_entry *);
	struct udev_device *(*device_new_from_syspath)(struct udev *, const char *);
	struct udev_device *(*device_new_from_devnum)(struct udev *, char, dev_t);
	struct udev_device *(*device_get_parent_with_subsystem_devtype)(struct udev_device *,
								      const char *, const char *);
	const char *(*device_get_devnode)(struct udev_device *);
	const char *(*device_get_syspath)(struct udev_device *);
	const char *(*device_get_sysattr_value)(struct udev_device *, const char *);
	struct udev_device *(*device_unref)(struct udev_device *);
} fns;

/* The libudev handle once every function is resolved; set under the lock. */
static void *handle;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int resolve(void *h)
{
#define SYM(field, name)                               \
	do {                                           \
		*(void **)&fns.field = dlsym(h, name); \
		if (!fns.field)                        \
			return 0;                      \
	} while (0)
	SYM(new_, "udev_new");
	SYM(unref, "udev_unref");
	SYM(enumerate_new, "udev_enumerate_new");
	SYM(enumerate_add_match_subsystem, "udev_enumerate_add_match_subsystem");
	SYM(enumerate_scan_devices, "udev_enumerate_scan_devices");
	SYM(enumerate_get_list_entry, "udev_enumerate_get_list_entry");
	SYM(enumerate_unref, "udev_enumerate_unref");
	SYM(list_entry_get_next, "udev_list_entry_get_next");
	SYM(list_entry_get_name, "udev_list_entry_get_name");
	SYM(device_new_from_syspath, "udev_device_new_from_syspath");
	SYM(device_new_from_devnum, "udev_device_new_from_devnum");
	SYM(device_get_parent_with_subsystem_devtype,
	    "udev_device_get_parent_with_subsystem_devtype");
	SYM(device_get_devnode, "udev_device_get_devnode");
	SYM(device_get_syspath, "udev_device_get_syspath");
	SYM(device_get_sysattr_value, "udev_device_get_sysattr_value");
	SYM(device_unref, "udev_device_unref");
#undef SYM
	return 1;
}

static int load(void)
{
	pthread_mutex_lock(&lock);
	if (!handle) {
		void *h = dlopen("libudev.so.1", RTLD_NOW | RTLD_LOCAL);
		if (h && resolve(h)) {
			handle = h;
		} else if (h) {
			/* No pointer into a library that is about to go may stay behind. */
			memset(&fns, 0, sizeof fns);
			dlclose(h);
		}
	}
	int loaded = handle != NULL;
	pthread_mutex_unlock(&lock);
	return loaded;
}

__attribute__((destructor)) static void unload(void)
{
	pthread_mutex_lock(&lock);
	memset(&fns, 0, sizeof fns);
	if (handle)
		dlclose(handle);
	handle = NULL;
	pthread_mutex_unlock(&lock);
}

/* Every other function is only reached with an object that udev_new() (and therefore a
 * successful load()) made. */
HIDDEN struct udev *udev_new(void)
{
	return load() ? fns.new_() : NULL;
}
HIDDEN struct udev *udev_unref(struct udev *u)
{
	return fns.unref(u);
}
HIDDEN struct udev_enumerate *udev_enumerate_new(struct udev *u)
{
	return fns.enumerate_new(u);
}
HIDDEN int udev_enumerate_add_match_subsystem(struct udev_enumerate *e, const char *s)
{
	return fns.enumerate_add_match_subsystem(e, s);
}
HIDDEN int udev_enumerate_scan_devices(struct udev_enumerate *e)
{
	return fns.enumerate_scan_devices(e);
}
HIDDEN struct udev_list_entry *udev_enumerate_get_list_entry(struct udev_enumerate *e)
{
	return fns.enumerate_get_list_entry(e);
}
HIDDEN struct udev_enumerate *udev_enumerate_unref(struct udev_enumerate *e)
{
	return fns.enumerate_unref(e);
}
HIDDEN struct udev_list_entry *udev_list_entry_get_next(struct udev_list_entry *l)
{
	return fns.list_entry_get_next(l);
}
HIDDEN const char *udev_list_entry_get_name(struct udev_list_entry *l)
{
	return fns.list_entry_get_name(l);
}
HIDDEN struct udev_device *udev_device_new_from_syspath(struct udev *u, const char *p)
{
	return fns.device_new_from_syspath(u, p);
}
HIDDEN struct udev_device *udev_device_new_from_devnum(struct udev *u, char t, dev_t n)
{
	return fns.device_new_from_devnum(u, t, n);
}
HIDDEN struct udev_device *udev_device_get_parent_with_subsystem_devtype(
	struct udev_device *d, const char *s, const char *t)
{
	return fns.device_get_parent_with_subsystem_devtype(d, s, t);
}
HIDDEN const char *udev_device_get_devnode(struct udev_device *d)
{
	return fns.device_get_devnode(d);
}
HIDDEN const char *udev_device_get_syspath(struct udev_device *d)
{
	return fns.device_get_syspath(d);
}
HIDDEN const char *udev_device_get_sysattr_value(struct udev_device *d, const char *a)
{
	return fns.device_get_sysattr_value(d, a);
}
HIDDEN struct udev_device *udev_device_unref(struct udev_device *d)
{
	return fns.device_unref(d);
}
