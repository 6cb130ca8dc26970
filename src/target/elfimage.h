/* Looking things up in an ELF file on disk (the target's python binary or libpython): symbols
 * from .dynsym then .symtab, sections, and the load address rule. Uses libelf. */
#ifndef APROF_ELFIMAGE_H
#define APROF_ELFIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct elf_image {
    int fd;
    void *elf;            /* Elf* */
    uint64_t first_load;  /* p_vaddr of the first PT_LOAD, page aligned down */
    bool is_pie_or_so;    /* ET_DYN: relocated by the load bias */
} elf_image;

int elf_image_open(const char *path, elf_image *img);
void elf_image_close(elf_image *img);

/* Symbol value (link-time address) and size by exact name. 0 on success, -1 if absent. */
int elf_image_symbol(elf_image *img, const char *name, uint64_t *value, uint64_t *size);

/* Section address and size by name; with data, its bytes (size is then never more than the
 * bytes read). 0 on success, -1 if absent (or its data unreadable). */
int elf_image_section(elf_image *img, const char *name, uint64_t *addr, uint64_t *size,
                      const uint8_t **data);

/* Does the file have DWARF (.debug_info)? */
bool elf_image_has_debug_info(elf_image *img);

#endif
