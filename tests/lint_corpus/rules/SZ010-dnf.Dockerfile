# transship-lint disable-file=SZ005
FROM fedora:40
# expect: SZ010
RUN dnf install -y httpd && dnf clean all
RUN dnf install -y --setopt=install_weak_deps=False nginx && dnf clean all
RUN yum install -y tar && yum clean all
