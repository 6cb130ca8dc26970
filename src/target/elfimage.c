#include "elfimage.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

int elf_image_open(const char *path, elf_image *img)
{
    memset(img, 0, sizeof(*img));
    img->fd = -1;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e || elf_kind(e) != ELF_K_ELF) {
        if (e)
            elf_end(e);
        close(fd);
        return -1;
    }
    GElf_Ehdr eh;
    if (!gelf_getehdr(e, &eh) || eh.e_machine != EM_X86_64) {
        elf_end(e);
        close(fd);
        return -1;
    }
    img->fd = fd;
    img->elf = e;
    img->is_pie_or_so = eh.e_type == ET_DYN;
    size_t nph = 0;
    elf_getphdrnum(e, &nph);
    img->first_load = 0;
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD) {
            img->first_load = ph.p_vaddr & ~(uint64_t)0xfff;
            break;
        }
    }
    return 0;
}

void elf_image_close(elf_image *img)
{
    if (img->elf)
        elf_end(img->elf);
    if (img->fd >= 0)
        close(img->fd);
    img->elf = NULL;
    img->fd = -1;
}

static int find_in_symtab(Elf *e, Elf_Scn *scn, const char *name, uint64_t *value, uint64_t *size)
{
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_entsize == 0)
        return -1;
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d)
        return -1;
    size_t n = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < n; i++) {
        GElf_Sym sym;
        if (!gelf_getsym(d, (int)i, &sym) || sym.st_value == 0 || sym.st_shndx == SHN_UNDEF)
            continue;
        const char *s = elf_strptr(e, sh.sh_link, sym.st_name);
        if (s && strcmp(s, name) == 0) {
            *value = sym.st_value;
            if (size)
                *size = sym.st_size;
            return 0;
        }
    }
    return -1;
}

int elf_image_symbol(elf_image *img, const char *name, uint64_t *value, uint64_t *size)
{
    Elf *e = img->elf;
    for (int pass = 0; pass < 2; pass++) {
        Elf_Scn *scn = NULL;
        while ((scn = elf_nextscn(e, scn)) != NULL) {
            GElf_Shdr sh;
            if (!gelf_getshdr(scn, &sh))
                continue;
            if (sh.sh_type != (pass == 0 ? SHT_DYNSYM : SHT_SYMTAB))
                continue;
            if (find_in_symtab(e, scn, name, value, size) == 0)
                return 0;
        }
    }
    return -1;
}

int elf_image_section(elf_image *img, const char *name, uint64_t *addr, uint64_t *size,
                      const uint8_t **data)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(img->elf, &shstrndx) != 0)
        return -1;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(img->elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        const char *s = elf_strptr(img->elf, shstrndx, sh.sh_name);
        if (!s || strcmp(s, name) != 0)
            continue;
        if (addr)
            *addr = sh.sh_addr;
        if (size)
            *size = sh.sh_size;
        if (data) {
            Elf_Data *d = sh.sh_type == SHT_NOBITS ? NULL : elf_getdata(scn, NULL);
            *data = d ? d->d_buf : NULL;
            if (!d || !d->d_buf)
                return -1;
            /* what was read is the size callers may touch, whatever the header claims */
            if (size && d->d_size < *size)
                *size = d->d_size;
        }
        return 0;
    }
    return -1;
}

bool elf_image_has_debug_info(elf_image *img)
{
    return elf_image_section(img, ".debug_info", NULL, NULL, NULL) == 0;
}
